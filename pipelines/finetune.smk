# Stage 1b (scenes whose catalogue names finetune_labels): fine-tune the model on the
# footprints digitised in the scene before mapping it (geounet finetune: the base model's
# card is kept, chips stay inside the labels' area, thresholds chosen on a held-out part).
# Inputs:  the scene image and its finetune_labels, the workflow's model (config `model`,
#          a trained model, or the bundled model), config finetune_minutes.
# Outputs: <results>/{scene}/model/{scene}.safetensors (predict, vectorise and evaluate of
#          this scene use it). A checkpoint: the rules that read its card wait for it.


checkpoint finetune:
    input:
        image=scene_image_input,
        labels=scene_finetune_labels_input,
        model=base_model_input,
    output:
        model=R("{scene}/model/{scene}.safetensors"),
    params:
        image=scene_image,
        labels=scene_finetune_labels,
        model=base_model_option,
        options=finetune_options,
    threads: 1
    conda:
        "envs/geounet.yaml"
    log:
        R("{scene}/logs/finetune.log"),
    benchmark:
        R("{scene}/benchmarks/finetune.tsv")
    shell:
        "OMP_NUM_THREADS={threads} geounet finetune --images {params.image:q}"
        " --labels {params.labels:q} {params.model} {params.options}"
        " --out {output.model:q} --overwrite --no-progress > {log:q} 2>&1"
