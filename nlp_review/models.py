"""Review flags and reviews: added with the batch review issue."""
