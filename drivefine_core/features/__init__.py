"""Features: the trajectory tokenizer and the Parquet feature cache the planners train from.

Modules (import them directly; this package imports nothing, so the tokenizer stays free of torch):
  params        FeatureParams (image size, cameras, row groups, shuffle buffer, ...), SCHEMA_VERSION
  builder       build_scene_features(scene, sensor_blobs, split, params) -> SceneFeatures
  store         build_feature_store(scenes, sensor_blobs, out_uri, split, params) -> StoreResult
  from_scenes   build_features_from_scenes_file(scenes_parquet, sensor_blobs, out_uri, params)
  dataset       StreamingFeatureDataset, InMemoryFeatureDataset, collate_features
  tokenizer     encode / decode of 8 poses <-> 24 tokens
"""
