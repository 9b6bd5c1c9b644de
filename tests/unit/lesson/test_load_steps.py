"""`minimesh load --each-step`'s table, read from locust's stats CSV (the format of locust 2.x)."""

from minimesh.lesson.load_steps import StepRow, read_rows, results_table

HEADER = ("Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
          "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,"
          "99.99%,100%\n")


def test_the_rows_asked_for_become_table_lines(tmp_path):
    stats = tmp_path / "s_stats.csv"
    stats.write_text(HEADER
                     + "POST,/api/checkout,40,10,430,455.1,2,1302,80,2.6,0.6,430,450,470,480,500,510,600,700,1300,1300,1300\n"
                     + "GET,/api/products,80,0,12,13.0,5,40,900,5.3,0,12,13,14,15,20,25,30,40,40,40,40\n"
                     + ",Aggregated,120,10,20,160.3,2,1302,600,8.0,0.6,20,30,40,400,450,500,600,700,1300,1300,1300\n")
    rows = read_rows(stats, "2 · connection-pool", ("/api/checkout", "Aggregated", "/missing"))
    assert rows == [StepRow("2 · connection-pool", "/api/checkout", 40, 10, 430.0, 510.0),
                    StepRow("2 · connection-pool", "Aggregated", 120, 10, 20.0, 500.0),
                    StepRow("2 · connection-pool", "/missing", 0, 0, None, None)]
    lines = results_table(rows).splitlines()
    assert lines[2] == "| 2 · connection-pool | /api/checkout | 40 | 25.0 % | 430 ms | 510 ms | - |"
    assert lines[4] == "| 2 · connection-pool | /missing | 0 | 0.0 % | - | - | - |"


def test_no_answer_at_all_reads_as_no_percentiles(tmp_path):
    stats = tmp_path / "s_stats.csv"
    stats.write_text(HEADER + ",Aggregated,0,0,0,0,0,0,0,0,0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A\n")
    [row] = read_rows(stats, "1 · x", ("Aggregated",))
    assert (row.requests, row.p50_ms, row.failure_pct) == (0, None, 0.0)
