"""ttclab.backends"""
