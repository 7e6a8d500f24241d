"""Models: the pretrained encoders xner fine-tunes (the only subpackage that knows torch).

>>> from xner.models import load_backbone
>>> load_backbone("tiny").name
'tiny'
"""

from xner.models.backbone import Backbone, load_backbone
from xner.models.embedded import embedded_model_dir

__all__ = ["Backbone", "embedded_model_dir", "load_backbone"]
