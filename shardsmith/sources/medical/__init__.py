"""sources/medical"""
