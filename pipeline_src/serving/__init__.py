"""Which model serves: the push history, the serving pointer, rollback and prediction.

    history    the append-only record under {serving}/history/, CURRENT and models.config
    record     the night's push, read from MLMD and the night's summary, into the history
    strategy   ServingModelStrategy: the Resolver's pick, the model CURRENT names
    predict    the serving SavedModel's labels for image files
    cli        `emerald models`, `emerald rollback`, `emerald predict`

Every read and write of the serving location goes through tf.io.gfile, so it
may be a local folder or gs://. TensorFlow is imported inside the functions.
"""
