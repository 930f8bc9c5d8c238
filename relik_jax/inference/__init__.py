"""Text in, annotations out: the ReLiK pipeline, window merging, output types."""
