"""GERBIL-faithful evaluation. Modules, lowest first (each imports only modules listed before it):

nif (NIF Turtle, UTF-16 offsets), uris (title <-> URI, sameAs expansion), datasets (the GERBIL corpora),
scoring (markings, A2KB/D2KB counts, P/R/F1, tables), service (the NIF web service, gold annotator),
client (GERBIL's side of the service), run (`evaluate_gerbil`: datasets through the service, scored).
"""
