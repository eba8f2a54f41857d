"""Knowledge base: parsing, chunking, indexes (SQLite, PostgreSQL) and hybrid retrieval."""
