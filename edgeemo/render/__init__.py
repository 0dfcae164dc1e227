"""Drawing results: colours (:mod:`.style`), placement (:mod:`.layout`), boxes and tabs (:mod:`.annotate`),
valence/arousal bars (:mod:`.va_bars`), the emotion timeline (:mod:`.timeline`) and the circumplex plot
(:mod:`.circumplex`)."""
