"""Textopia inside other prompt tools: Dynamic Prompts (:mod:`textopia.integrations.dynamicprompts`)
and ComfyUI (:mod:`textopia.integrations.comfyui`).

Nothing is imported here: each integration is imported on its own, and only it needs its host's
library (``dynamicprompts`` for the first; nothing for the second, which ComfyUI reads by convention).
"""
