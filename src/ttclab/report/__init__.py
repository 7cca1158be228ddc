"""ttclab.report"""
