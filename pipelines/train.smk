# Stage 0 (only when the config's `train` is set): train the model the workflow maps with.
# Inputs:  config train.images (scenes) and train.labels (footprints).
# Outputs: <results>/model/model.safetensors (used by every later stage instead of `model`).
# A checkpoint: the rules that read its card (threshold) are re-evaluated once it has run.


checkpoint train:
    input:
        unpack(train_inputs),
    output:
        model=TRAINED_MODEL,
    params:
        options=train_options,
    threads: 1
    conda:
        "envs/geounet.yaml"
    log:
        R("model/logs/train.log"),
    benchmark:
        R("model/benchmarks/train.tsv")
    shell:
        "OMP_NUM_THREADS={threads} geounet train {params.options} --out {output.model:q}"
        " --overwrite --no-progress > {log:q} 2>&1"
