"""ttclab.tasks"""
