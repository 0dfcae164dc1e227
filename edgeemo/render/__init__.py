"""Drawing results: the look shared by everything drawn (:mod:`.style`), placement (:mod:`.layout`), boxes and
tabs (:mod:`.annotate`), valence/arousal bars (:mod:`.va_bars`), matplotlib figures (:mod:`.figure`), the emotion
timeline (:mod:`.timeline`) and the circumplex plot (:mod:`.circumplex`)."""
