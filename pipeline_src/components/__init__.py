"""TFX components: Emerald's own ExampleGen and distribution validator."""
