"""sources/werewolf"""
