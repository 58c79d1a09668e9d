"""The embedded default: stories from templates, pictures drawn with Pillow, Ken Burns clips with PyAV."""
