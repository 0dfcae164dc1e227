"""The model runtime: model facts (:mod:`.spec`), packaged files (:mod:`.assets`), onnxruntime sessions
(:mod:`.session`), face crops (:mod:`.crops`) and the classifier (:mod:`.model`)."""
