"""Stage 2, export: the chain from a trained model to verified .tflite files and their artifacts (formats,
conversion and cards, file edits, the browser variant, app snippets). Imports training, never above."""
