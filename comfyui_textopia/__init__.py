"""Textopia's ComfyUI node pack: write text-to-image prompts from an idea, or variations of one.

Install: Textopia in ComfyUI's Python (``pip install /path/to/textopia``), then this folder in
``ComfyUI/custom_nodes/`` (``ln -s /path/to/textopia/comfyui_textopia ComfyUI/custom_nodes/``).
The nodes live in :mod:`textopia.integrations.comfyui`; this folder only shows them to ComfyUI.
"""

from textopia.integrations.comfyui import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
