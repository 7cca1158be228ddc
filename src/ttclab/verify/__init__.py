"""ttclab.verify"""
