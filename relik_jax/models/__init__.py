"""Encoders shared by the retriever and the reader: layers, BERT (E5), DeBERTa-v3, backbone factory."""
