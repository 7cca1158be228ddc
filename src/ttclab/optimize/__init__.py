"""ttclab.optimize"""
