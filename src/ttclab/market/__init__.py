"""ttclab.market"""
