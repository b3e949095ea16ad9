# Shared by every stage: validates the config and reads the scene catalogue.
# Inputs:  config (pipelines/config.yaml, --config), the scene catalogue it names.
# Outputs: none; defines SCENES, the option helpers of the rules and final_outputs().
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from geounet.io.catalogue import read_catalogue
from geounet.io.remote import is_local
from geounet.errors import GeounetError


min_version("8.0")


validate(config, "config.schema.yaml")

# Each catalogue's results live in a folder of their own (results/<catalogue name> by
# default): a second catalogue never mixes with, or leaves stale rows of, the first.
RESULTS = (config["results_dir"] or f"results/{Path(config['catalogue']).stem}").rstrip("/")


def R(path):
    """A path under this catalogue's results folder."""
    return os.path.join(RESULTS, path)


try:
    # Missing files are reported per scene below, not fatal: with --keep-going every other
    # scene is still mapped.
    SCENES = {s.scene_id: s for s in read_catalogue(config["catalogue"], check_files=False)}
except GeounetError as exc:
    raise WorkflowError(str(exc)) from None

for _sid, _scene in SCENES.items():
    for _kind, _file in (
        ("image", _scene.image),
        ("truth", _scene.truth),
        ("existing", _scene.existing),
        ("finetune_labels", _scene.finetune_labels),
    ):
        if _file is not None and is_local(_file) and not Path(_file).is_file():
            print(
                f"geounet workflow: scene {_sid}: {_kind} {_file} not found; its jobs will "
                "fail (run with --keep-going to map the other scenes)",
                file=sys.stderr,
            )

TRAINED_MODEL = R("model/model.safetensors")


wildcard_constraints:
    scene="|".join(re.escape(s) for s in SCENES),


def model_path():
    """The checkpoint the workflow maps with, or None for the bundled model."""
    if config["train"]:
        return TRAINED_MODEL
    return config["model"]


def model_card():
    """The model card of the mapping model, or None while it does not exist (trained first)."""
    from geounet.model.checkpoint import bundled_model_path, read_card

    path = model_path()
    if path and not Path(path).exists():
        return None
    try:
        return read_card(path or bundled_model_path())
    except GeounetError:
        return None


SPLIT_CHANNELS = {"body", "contact"}
"""Output channels that split touching buildings (predict keeps them for vectorise)."""


def train_option(name):
    """A `geounet train` option of the config (`contact_radius` or `contact-radius`)."""
    options = config["train"].get("options") or {}
    return {key.replace("-", "_"): value for key, value in options.items()}.get(name)


def trained_model_splits():
    """Whether the model trained first has body/contact channels: `geounet train` adds
    them for --body-erosion > 0 and --contact-radius > 0."""
    splits = False
    for name in ("body_erosion", "contact_radius"):
        value = train_option(name)
        try:
            splits |= float(value or 0) > 0
        except ValueError:
            raise WorkflowError(f"train option {name}: {value!r} is not a number") from None
    return splits


if config["train"]:
    # The trained model's card exists only once `train` ran: its threshold is read then
    # (card_threshold); its split channels follow from the training options.
    CARD = None
    SPLIT = trained_model_splits()
else:
    CARD = model_card()
    # Models with body/contact channels split touching buildings.
    SPLIT = CARD is not None and bool(SPLIT_CHANNELS & set(CARD.class_names))
# The footprint threshold: the config's, else the one the model card chose on validation data.
THRESHOLD = config["threshold"] if config["threshold"] is not None else (
    CARD.threshold if CARD else 0.5
)


def trained_card():
    """The card of the model trained first. `train` is a checkpoint: until it has run this
    raises, and the jobs whose input functions call it wait for it and are re-evaluated."""
    checkpoints.train.get()
    card = model_card()
    if card is None:
        raise WorkflowError(f"{TRAINED_MODEL} is not a readable geounet checkpoint")
    if bool(SPLIT_CHANNELS & set(card.class_names)) != SPLIT:
        raise WorkflowError(
            f"{TRAINED_MODEL} has output channels {', '.join(card.class_names)} but the "
            f"config's train options (body_erosion, contact_radius) "
            f"{'ask for' if SPLIT else 'do not ask for'} body/contact channels; delete "
            f"{RESULTS}/model/ to re-train it with them"
        )
    return card


def finetuned(wildcards):
    """Whether a scene is mapped with a model fine-tuned on its own footprints."""
    return SCENES[wildcards.scene].finetune_labels is not None


def finetuned_model(wildcards):
    """The model fine-tuned for a scene (its catalogue names finetune_labels)."""
    return R(f"{wildcards.scene}/model/{wildcards.scene}.safetensors")


def finetuned_card(wildcards):
    """The card of a scene's fine-tuned model. `finetune` is a checkpoint: until it has
    run this raises, and the jobs whose input functions call it wait for it."""
    checkpoints.finetune.get(scene=wildcards.scene)
    from geounet.model.checkpoint import read_card

    return read_card(finetuned_model(wildcards))


def scene_card(wildcards):
    """The card of the model a scene is mapped with, once that model exists."""
    if finetuned(wildcards):
        return finetuned_card(wildcards)
    return trained_card() if config["train"] else CARD


def card_input(wildcards):
    """The model a scene is mapped with, when it is made by the workflow (trained or
    fine-tuned), for the rules whose params read its card; nothing otherwise (the card was
    read when the workflow was parsed)."""
    if finetuned(wildcards):
        finetuned_card(wildcards)
        return [finetuned_model(wildcards)]
    if config["train"]:
        trained_card()
        return [TRAINED_MODEL]
    return []


def card_threshold(wildcards):
    """The footprint threshold: the config's, else the card's of the model the scene is
    mapped with (a trained or fine-tuned model's once it exists; its rules take
    card_input as an input)."""
    if config["threshold"] is not None:
        return config["threshold"]
    if finetuned(wildcards) or config["train"]:
        return scene_card(wildcards).threshold
    return THRESHOLD


def card_min_confidence(wildcards):
    """The smallest confidence of a footprint kept: the card's of the model the scene is
    mapped with (0, keeping every footprint, when there is no card)."""
    card = scene_card(wildcards) if finetuned(wildcards) or config["train"] else CARD
    return card.min_confidence if card else 0.0


def base_model_input(wildcards):
    """The workflow's model as an input file (nothing for the bundled model)."""
    path = model_path()
    return [path] if path else []


def base_model_option(wildcards):
    """`--model PATH` for geounet, or nothing for the bundled model."""
    path = model_path()
    return f"--model {shlex.quote(path)}" if path else ""


def model_input(wildcards):
    """The model a scene is mapped with, as an input file (its fine-tuned model, else the
    workflow's; nothing for the bundled model)."""
    return [finetuned_model(wildcards)] if finetuned(wildcards) else base_model_input(wildcards)


def model_option(wildcards):
    """`--model PATH` of the model a scene is mapped with, or nothing for the bundled model."""
    if finetuned(wildcards):
        return f"--model {shlex.quote(finetuned_model(wildcards))}"
    return base_model_option(wildcards)


def scene_finetune_labels(wildcards):
    """The footprints digitised in a scene to fine-tune on."""
    return str(SCENES[wildcards.scene].finetune_labels)


def scene_finetune_labels_input(wildcards):
    """The fine-tuning footprints as a rule input; nothing when the file is missing (the
    job then fails alone with geounet's one-line error)."""
    labels = scene_finetune_labels(wildcards)
    return [labels] if Path(labels).is_file() else []


def finetune_options(wildcards):
    """`--minutes M` of geounet finetune from the config (nothing: its default)."""
    minutes = config["finetune_minutes"]
    return "" if minutes is None else f"--minutes {float(minutes)}"


def tiling_options(wildcards):
    """Tile plan options of `geounet plan` from the config."""
    opts = [f"--border {int(config['border'])}"]
    if config["tile"] is not None:
        opts.append(f"--tile {int(config['tile'])}")
    if config["overlap"] is not None:
        opts.append(f"--overlap {int(config['overlap'])}")
    return " ".join([*opts, resample_option(wildcards)])


def resample_option(wildcards):
    """`--resample` or `--no-resample`: plan and predict must agree on it."""
    return "--resample" if config["resample"] else "--no-resample"


def tta_option(wildcards):
    """`--tta MODE` for geounet predict, or nothing (the model card's mode)."""
    return "" if config["tta"] is None else f"--tta {shlex.quote(config['tta'])}"


def scene_image(wildcards):
    """The image of a scene."""
    return str(SCENES[wildcards.scene].image)


def scene_image_input(wildcards):
    """The image of a scene as a rule input; nothing when it is missing, so the DAG still
    builds and the scene's plan job fails alone with geounet's one-line error."""
    image = scene_image(wildcards)
    return [image] if Path(image).is_file() else []


def scene_truth_input(wildcards):
    """The truth of a scene as a rule input; nothing when the file is missing (the job
    then fails alone with geounet's one-line error)."""
    truth = scene_truth(wildcards)
    return [truth] if Path(truth).is_file() else []


def scene_truth(wildcards):
    """The true footprints of a scene (only scenes with truth are evaluated)."""
    truth = SCENES[wildcards.scene].truth
    if truth is None:
        raise WorkflowError(f"scene {wildcards.scene} has no truth in the catalogue")
    return str(truth)


def scene_existing(wildcards):
    """The buildings already mapped in a scene (only such scenes are conflated)."""
    existing = SCENES[wildcards.scene].existing
    if existing is None:
        raise WorkflowError(f"scene {wildcards.scene} has no existing buildings in the catalogue")
    return str(existing)


def scene_existing_input(wildcards):
    """The existing buildings as a rule input; nothing when the file is missing (the job
    then fails alone with geounet's one-line error)."""
    existing = scene_existing(wildcards)
    return [existing] if Path(existing).is_file() else []


def scenes_with_existing():
    """Ids of the scenes whose catalogue entry names buildings already mapped."""
    return [sid for sid, s in SCENES.items() if s.existing is not None]


def scenes_with_truth():
    """Ids of the scenes whose catalogue entry gives ground truth."""
    return [sid for sid, s in SCENES.items() if s.truth is not None]


def final_outputs(wildcards):
    """Everything a run produces: per scene and for the whole catalogue."""
    per_scene = [
        f"{RESULTS}/{sid}/{sid}.{kind}"
        for sid in SCENES
        for kind in ("tiles.gpkg", "prob.tif", "buildings.gpkg")
    ]
    if config["export_osm"]:
        per_scene += [f"{RESULTS}/{sid}/{sid}.osm" for sid in SCENES]
    per_scene += [f"{RESULTS}/{sid}/{sid}.conflation.gpkg" for sid in scenes_with_existing()]
    reports = [f"{RESULTS}/{sid}/evaluation/report.json" for sid in scenes_with_truth()]
    summary = [R("summary.json"), R("summary.csv")] if reports else []
    return [*per_scene, *reports, R("buildings.gpkg"), *summary, R("summary.qgz")]


def train_inputs(wildcards):
    """Training scenes and footprints named by the config."""
    return {"images": config["train"]["images"], "labels": config["train"]["labels"]}


def train_options(wildcards):
    """`--images`/`--labels` per file and the config's `geounet train` options."""
    train = config["train"]
    opts = [f"--images {shlex.quote(p)}" for p in train["images"]]
    opts += [f"--labels {shlex.quote(p)}" for p in train["labels"]]
    for key, value in (train.get("options") or {}).items():
        flag = f"--{key.replace('_', '-')}"
        if str(value).lower() in ("true", "false"):  # --config may pass booleans as text
            opts.append(flag if str(value).lower() == "true" else f"--no-{flag[2:]}")
        else:
            opts.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(opts)


def scene_id_options(wildcards):
    """`--scene-id ID` for each scene, in catalogue order."""
    return " ".join(f"--scene-id {shlex.quote(sid)}" for sid in SCENES)


def split_input(wildcards):
    """The split raster of a scene, for models with body/contact channels."""
    if not SPLIT:
        return {}
    return {"split": f"{RESULTS}/{wildcards.scene}/{wildcards.scene}.split.tif"}


def split_option(wildcards, input):
    """`--split PATH --body-threshold P --seed-area A` for geounet vectorize, when the
    model has body/contact channels (P, A: the model card's; a trained model's once it
    exists)."""
    if not SPLIT:
        return ""
    card = scene_card(wildcards)
    return (
        f"--split {shlex.quote(input.split)} --body-threshold {card.body_threshold} "
        f"--seed-area {card.seed_area_m2}"
    )


def predict_outputs(prefix):
    """Named outputs of the predict rule for the files under `prefix`."""
    outputs = {"prob": f"{prefix}.prob.tif"}
    if SPLIT:
        outputs["split"] = f"{prefix}.split.tif"
    return outputs


def qgis_project_inputs(wildcards):
    """Every file the catalogue's QGIS project shows (the evaluation as its report.json,
    written after objects.gpkg)."""
    return {
        "images": [str(s.image) for s in SCENES.values() if Path(s.image).is_file()],
        "prob": [f"{RESULTS}/{sid}/{sid}.prob.tif" for sid in SCENES],
        "footprints": [f"{RESULTS}/{sid}/{sid}.buildings.gpkg" for sid in SCENES],
        "plans": [f"{RESULTS}/{sid}/{sid}.tiles.gpkg" for sid in SCENES],
        "reports": [f"{RESULTS}/{sid}/evaluation/report.json" for sid in scenes_with_truth()],
        "conflations": [f"{RESULTS}/{sid}/{sid}.conflation.gpkg" for sid in scenes_with_existing()],
    }


def qgis_project_options(wildcards):
    """`--scene ID=IMAGE --prob ID=P ...` of `geounet qgis-project` for every scene, quoted;
    `--objects` only for the scenes with truth, `--conflation` for those with `existing`."""
    opts = []
    for sid, scene in SCENES.items():
        files = [
            ("--scene", str(scene.image)),
            ("--prob", f"{RESULTS}/{sid}/{sid}.prob.tif"),
            ("--footprints", f"{RESULTS}/{sid}/{sid}.buildings.gpkg"),
            ("--plan", f"{RESULTS}/{sid}/{sid}.tiles.gpkg"),
        ]
        if scene.truth is not None:
            files.append(("--objects", f"{RESULTS}/{sid}/evaluation/objects.gpkg"))
        if scene.existing is not None:
            files.append(("--conflation", f"{RESULTS}/{sid}/{sid}.conflation.gpkg"))
        opts += [f"{flag} {shlex.quote(f'{sid}={path}')}" for flag, path in files]
    return " ".join(opts)
