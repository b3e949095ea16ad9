# geounet workflow: map the buildings of every scene of a catalogue.
#   snakemake --cores 2                                   # the sample catalogue
#   snakemake --cores 8 --config catalogue=my_scenes.csv  # your own scenes
#   snakemake --workflow-profile profiles/slurm           # on a SLURM cluster
# Scientific parameters: pipelines/config.yaml (schema: pipelines/config.schema.yaml).
# Threads, GPUs and cluster resources: profiles/default, profiles/slurm.
# See pipelines/README.md.


configfile: f"{workflow.basedir}/pipelines/config.yaml"


include: "pipelines/common.smk"
include: "pipelines/train.smk"
include: "pipelines/plan.smk"
include: "pipelines/finetune.smk"
include: "pipelines/predict.smk"
include: "pipelines/vectorise.smk"
include: "pipelines/export.smk"
include: "pipelines/evaluate.smk"
include: "pipelines/summarise.smk"


rule all:
    default_target: True
    input:
        final_outputs,
