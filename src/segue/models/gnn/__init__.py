"""Graph models (the second source design, the Spotify Engine's technical architecture): graphs, GAT / genre-aware GAT / LightGCN /
PlaylistGAT, BPR trainers, explanations, cold start.

Modules, in the order data flows through them (their torch modules are in
:mod:`segue.models.nets`):

``graph``        :class:`~segue.models.gnn.graph.PlaylistGraph` (playlist/track/artist/album/genre,
                 audio features) and :class:`~segue.models.gnn.graph.ListeningGraph`
                 (user/track/artist/genre with the listens attributes; user → genre edges opt-in),
                 PyG ``HeteroData`` export, save/load without pickle.
``sampling``     numpy neighbour sampling (PyG's needs pyg-lib or torch-sparse, not built for
                 torch 2.13), negatives that are never positives, held-out edge splits.
``training``     BPR, the nested ``TrainerConfig``, the simple and advanced trainers, modes,
                 checkpoints, resume, device choice.
``playlist``     what the playlist models share: examples that mimic queries, inductive scoring.
``lightgcn``     ``lightgcn`` (registered Recommender): LightGCN with playlists as new nodes.
``playlist_gat`` ``playlistgat`` (registered Recommender): attention over a query's seeds on
                 LightGCN's track vectors; new tracks through their album and artist.
``listening``    ``gat`` and ``genre_gat`` (registered, trained on listening data): GATs over
                 the listening graph (users are nodes), saved as every model is.
``explain``      attention read from the layers, genre evidence, multi-factor text, heatmaps.
``coldstart``    new users (stated genres), new tracks (artist embedding + noise), sparse users.
``runs``         library entry points (train/evaluate on playlist and listening splits), called by
                 ``segue train``, ``segue graph evaluate`` and the pipeline.
"""
