"""Textopia inside other systems: Dynamic Prompts (:mod:`textopia.integrations.dynamicprompts`),
ComfyUI (:mod:`textopia.integrations.comfyui`) and a file of ideas on a Ray cluster
(:mod:`textopia.integrations.ray_batch`).

Nothing is imported here: each integration is imported on its own, and only it needs its host's
library (``dynamicprompts``, ``ray``; nothing for ComfyUI, which reads the nodes by convention).
"""
