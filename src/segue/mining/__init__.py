"""Mining playlists: association rules between tracks (:mod:`.rules`) and playlist clusters
(:mod:`.clusters`). Each stage reads an ingested dataset and writes its outputs under a directory."""
