# Stage 1, plan tiles: cut each scene into overlapping tiles on the model's grid.
# Inputs:  the scene image (catalogue), the model card (config `model`, a trained model,
#          or the bundled model), config tile/overlap/border/resample.
# Outputs: <results>/{scene}/{scene}.tiles.gpkg (layer `tiles`: one polygon per tile with
#          ids, pixel and clipped bounds, loadable in QGIS; layer `plan`: its parameters).


rule plan:
    input:
        image=scene_image_input,
        model=base_model_input,
    output:
        plan=R("{scene}/{scene}.tiles.gpkg"),
    params:
        image=scene_image,
        model=base_model_option,
        tiling=tiling_options,
    conda:
        "envs/geounet.yaml"
    log:
        R("{scene}/logs/plan.log"),
    benchmark:
        R("{scene}/benchmarks/plan.tsv")
    shell:
        "geounet plan {params.image:q} --out {output.plan:q} {params.model} {params.tiling}"
        " --overwrite > {log:q} 2>&1"
