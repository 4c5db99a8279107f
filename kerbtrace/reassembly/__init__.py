"""kerbtrace.reassembly"""
