"""ttclab.ledger"""
