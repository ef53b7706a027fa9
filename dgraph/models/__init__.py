from .modeling import ModelMixin
