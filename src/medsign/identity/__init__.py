"""Who acts: organizations (hospitals), operators and, later, staff and patients."""
