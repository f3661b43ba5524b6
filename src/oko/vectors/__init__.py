"""Nearest-neighbour search over embeddings, shared by the face gallery and person ReID.

:mod:`oko.vectors.exact` is the batched-matmul exact search, :mod:`oko.vectors.faiss_index`
the optional faiss indexes for millions of vectors, :mod:`oko.vectors.index` picks one.
"""
