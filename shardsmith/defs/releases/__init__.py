"""defs/releases"""
