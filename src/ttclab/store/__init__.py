"""ttclab.store"""
