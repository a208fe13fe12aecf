"""defs/medical"""
