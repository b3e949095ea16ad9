# Stage 4, evaluate (scenes whose catalogue entry gives truth): pixel and object scores.
# Inputs:  the scene image and truth, <results>/{scene}/{scene}.prob.tif and
#          .buildings.gpkg, config threshold (or the model card's; a trained model's is read
#          once it exists) and evaluation (iou, min_size, unit).
# Outputs: <results>/{scene}/evaluation/report.json and report.html (+ figures).


rule evaluate:
    input:
        image=scene_image_input,
        truth=scene_truth_input,
        prob=R("{scene}/{scene}.prob.tif"),
        footprints=R("{scene}/{scene}.buildings.gpkg"),
        model=card_input,
    output:
        report=R("{scene}/evaluation/report.json"),
        html=R("{scene}/evaluation/report.html"),
    params:
        image=scene_image,
        truth=scene_truth,
        out_dir=R("{scene}/evaluation"),
        threshold=card_threshold,
        iou=config["evaluation"]["iou"],
        min_size=config["evaluation"]["min_size"],
        unit=config["evaluation"]["min_size_unit"],
    conda:
        "envs/geounet.yaml"
    log:
        R("{scene}/logs/evaluate.log"),
    benchmark:
        R("{scene}/benchmarks/evaluate.tsv")
    shell:
        "geounet evaluate {params.image:q} --truth {params.truth:q} --prob {input.prob:q}"
        " --footprints {input.footprints:q} --out-dir {params.out_dir:q}"
        " --threshold {params.threshold} --iou {params.iou} --min-size {params.min_size}"
        " --min-size-unit {params.unit} --name {wildcards.scene:q} --overwrite > {log:q} 2>&1"
