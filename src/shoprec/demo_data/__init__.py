"""The embedded demo shop: a slice of the UCI Online Retail data set.

Source: Daqing Chen, "Online Retail", UCI Machine Learning Repository (2015),
https://doi.org/10.24432/C5BW33, licensed under Creative Commons Attribution 4.0 (CC BY 4.0).
The slice holds every invoice line from 2011-09-01 to 2011-12-09 (221,204 lines), unchanged, as
Parquet. See README.md in this folder.
"""

from pathlib import Path

DEMO_PATH = Path(__file__).with_name("online_retail_2011q4.parquet")
DEMO_CREDIT = ("demo data: UCI Online Retail (Chen, 2015, doi:10.24432/C5BW33), CC BY 4.0; "
               "invoice lines 2011-09-01 … 2011-12-09")
