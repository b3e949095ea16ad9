# Stage 3b, export and conflate: the footprints for OpenStreetMap, and against what is mapped.
# Inputs:  <results>/{scene}/{scene}.buildings.gpkg; the catalogue's `existing` buildings of
#          a scene (an OSM extract, open buildings, a city layer), config evaluation.iou.
# Outputs: <results>/{scene}/{scene}.osm (JOSM-ready, when config export_osm);
#          <results>/{scene}/{scene}.conflation.gpkg (layer `conflation`: each footprint
#          new / match / conflict, and the mapped buildings not predicted; scenes with
#          `existing` only).


rule export_osm:
    input:
        footprints=R("{scene}/{scene}.buildings.gpkg"),
    output:
        osm=R("{scene}/{scene}.osm"),
    conda:
        "envs/geounet.yaml"
    log:
        R("{scene}/logs/export_osm.log"),
    shell:
        "geounet export {input.footprints:q} --to osm --out {output.osm:q} --overwrite"
        " > {log:q} 2>&1"


rule conflate:
    input:
        existing=scene_existing_input,
        footprints=R("{scene}/{scene}.buildings.gpkg"),
    output:
        conflation=R("{scene}/{scene}.conflation.gpkg"),
    params:
        existing=scene_existing,
        iou=config["evaluation"]["iou"],
    conda:
        "envs/geounet.yaml"
    log:
        R("{scene}/logs/conflate.log"),
    shell:
        "geounet conflate {input.footprints:q} --existing {params.existing:q}"
        " --out {output.conflation:q} --iou {params.iou} --overwrite > {log:q} 2>&1"
