# Stage 2, predict: stream each scene through the U-Net along its tile plan (rasterio
# windows; no pixel copies on disk) into a probability Cloud Optimized GeoTIFF.
# Inputs:  the scene image, results/{scene}/{scene}.tiles.gpkg, the model.
# Outputs: results/{scene}/{scene}.prob.tif (uint8, probability = value / 255, masked
#          no data). Threads, GPUs and dask workers come from the profile (resources).
#
# geounet names its outputs after the image (<stem>.prob.tif and its QGIS style
# sidecars <stem>.prob.*), so it writes into a per-scene staging folder and the finished
# files are renamed (atomically) to <scene_id>.prob.* beside the other results.


rule predict:
    input:
        image=scene_image,
        plan="results/{scene}/{scene}.tiles.gpkg",
        model=model_input,
    output:
        prob="results/{scene}/{scene}.prob.tif",
    params:
        model=model_option,
        resample=resample_option,
        stage="results/{scene}/.predict",
        stem=image_stem,
        dest="results/{scene}/{scene}.prob",
        dask=dask_options,
    threads: 1
    resources:
        dask_workers=1,
    conda:
        "envs/geounet.yaml"
    log:
        "results/{scene}/logs/predict.log",
    benchmark:
        "results/{scene}/benchmarks/predict.tsv"
    shell:
        "rm -rf {params.stage:q} && "
        "OMP_NUM_THREADS={threads} geounet predict {input.image:q} --plan {input.plan:q}"
        " {params.model} {params.resample} {params.dask} --out-dir {params.stage:q}"
        " --no-footprints --overwrite --quiet > {log:q} 2>&1"
        " && prefix={params.stage:q}/{params.stem:q}.prob"
        ' && for f in "$prefix".*; do mv "$f" {params.dest:q}"${{f#"$prefix"}}"; done'
        " && rmdir {params.stage:q}"
