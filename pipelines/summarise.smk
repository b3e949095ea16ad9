# Stage 5, summarise the catalogue.
# Inputs:  every <results>/{scene}/{scene}.buildings.gpkg; the evaluation report.json of
#          the scenes with truth.
# Outputs: <results>/buildings.gpkg (all footprints, with a scene_id column, in the first
#          scene's CRS); <results>/summary.json and summary.csv (one row per evaluated
#          scene and micro-averaged totals; only when some scene has truth);
#          <results>/summary.qgz (a QGIS project: one layer group per scene with its image,
#          probability, footprints, tile plan and, where it has truth, TP / FP / FN).


# Cheap steps over the whole catalogue: run by Snakemake itself, not submitted to a cluster.
localrules:
    merge_footprints,
    summarise,
    qgis_project,


rule merge_footprints:
    input:
        footprints=expand(R("{scene}/{scene}.buildings.gpkg"), scene=list(SCENES)),
    output:
        merged=R("buildings.gpkg"),
    params:
        ids=scene_id_options,
    conda:
        "envs/geounet.yaml"
    log:
        R("logs/merge_footprints.log"),
    benchmark:
        R("benchmarks/merge_footprints.tsv")
    shell:
        "geounet merge {input.footprints:q} {params.ids} --out {output.merged:q}"
        " --overwrite > {log:q} 2>&1"


rule summarise:
    input:
        reports=expand(
            R("{scene}/evaluation/report.json"), scene=scenes_with_truth()
        ),
    output:
        json=R("summary.json"),
        csv=R("summary.csv"),
    conda:
        "envs/geounet.yaml"
    log:
        R("logs/summarise.log"),
    benchmark:
        R("benchmarks/summarise.tsv")
    shell:
        "geounet summarise {input.reports:q} --out {output.json:q} --csv {output.csv:q}"
        " --overwrite > {log:q} 2>&1"


rule qgis_project:
    input:
        unpack(qgis_project_inputs),
    output:
        project=R("summary.qgz"),
    params:
        layers=qgis_project_options,
    conda:
        "envs/geounet.yaml"
    log:
        R("logs/qgis_project.log"),
    benchmark:
        R("benchmarks/qgis_project.tsv")
    shell:
        "geounet qgis-project --out {output.project:q} {params.layers}"
        " --overwrite > {log:q} 2>&1"
