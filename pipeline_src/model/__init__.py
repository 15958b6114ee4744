"""Emerald's image classifier: input pipeline, Keras CNN, SavedModel export and the Trainer run_fn."""
