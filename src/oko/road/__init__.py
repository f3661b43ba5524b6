"""Road condition: segmentation of markings and surface, weight-free lighting/glare/snow
analytics, road cleanup (traffic removed), defects and markings as events."""
