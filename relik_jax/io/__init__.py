"""Reading and writing other frameworks' files: Hugging Face folders, torch pickles (no torch needed)."""
