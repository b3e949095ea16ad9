# Stage 2, predict: stream each scene through the U-Net along its tile plan (rasterio
# windows; no pixel copies on disk) into a probability Cloud Optimized GeoTIFF.
# Inputs:  the scene image, <results>/{scene}/{scene}.tiles.gpkg, the model.
# Outputs: <results>/{scene}/{scene}.prob.tif (uint8, probability = value / 255, masked
#          no data, with its QGIS style sidecars), and {scene}.split.tif for models with
#          body/contact channels. Threads, GPUs and dask workers come from the profile.


rule predict:
    input:
        image=scene_image_input,
        plan=R("{scene}/{scene}.tiles.gpkg"),
        model=model_input,
    output:
        **predict_outputs(R("{scene}/{scene}")),
    params:
        image=scene_image,
        model=model_option,
        resample=resample_option,
        tta=tta_option,
        out_dir=lambda wildcards, output: os.path.dirname(output.prob),
    threads: 1
    resources:
        # geounet predict --workers / --scheduler ("" = none): set them in the profile
        dask_workers=1,
        dask_scheduler="",
    conda:
        "envs/geounet.yaml"
    log:
        R("{scene}/logs/predict.log"),
    benchmark:
        R("{scene}/benchmarks/predict.tsv")
    shell:
        "OMP_NUM_THREADS={threads} geounet predict {params.image:q} --plan {input.plan:q}"
        " {params.model} {params.resample} {params.tta} --workers {resources.dask_workers}"
        " --scheduler={resources.dask_scheduler:q} --out-dir {params.out_dir:q}"
        " --name {wildcards.scene:q} --no-footprints --overwrite --quiet > {log:q} 2>&1"
