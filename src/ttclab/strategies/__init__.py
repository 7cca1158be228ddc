"""ttclab.strategies"""
