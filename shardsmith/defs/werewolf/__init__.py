"""defs/werewolf"""
