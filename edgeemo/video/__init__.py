"""Video: reading and writing frames (:mod:`.reader`), tracking (:mod:`.tracking`), the per-frame session
(:mod:`.session`) and the whole-file run (:mod:`.run`)."""
