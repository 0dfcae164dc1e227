"""Video: options (:mod:`.options`), reading (:mod:`.reader`) and writing (:mod:`.writer`) frames, tracking
(:mod:`.tracking`), the per-frame session that owns the detection schedule (:mod:`.session`), the streaming outputs
(:mod:`.sinks`) and the whole-file run (:mod:`.run`)."""
