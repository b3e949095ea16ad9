# Stage 3, vectorise: building footprint polygons from each probability raster.
# Inputs:  <results>/{scene}/{scene}.prob.tif (+ .split.tif for models with body/contact
#          channels: touching buildings are split there), config threshold/min_area/
#          simplify/regularize; the model card's threshold, body threshold and smallest
#          confidence (a trained model's once it exists).
# Outputs: <results>/{scene}/{scene}.buildings.gpkg (layer `buildings`: id, area_m2,
#          confidence).


rule vectorise:
    input:
        unpack(split_input),
        prob=R("{scene}/{scene}.prob.tif"),
        model=card_input,
    output:
        footprints=R("{scene}/{scene}.buildings.gpkg"),
    params:
        threshold=card_threshold,
        min_confidence=card_min_confidence,
        min_area=config["min_area"],
        simplify=config["simplify"],
        regularize="--regularize" if config["regularize"] else "--no-regularize",
        split=split_option,
    conda:
        "envs/geounet.yaml"
    log:
        R("{scene}/logs/vectorise.log"),
    benchmark:
        R("{scene}/benchmarks/vectorise.tsv")
    shell:
        "geounet vectorize {input.prob:q} --out {output.footprints:q}"
        " --threshold {params.threshold} --min-confidence {params.min_confidence}"
        " --min-area {params.min_area}"
        " --simplify {params.simplify} {params.regularize} {params.split}"
        " --overwrite > {log:q} 2>&1"
