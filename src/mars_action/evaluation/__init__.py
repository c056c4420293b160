"""Video-level evaluation, score fusion, the paper's analyses and figures."""
