"""flowdredge-publisher: AWS network state (EC2, ENI, Auto Scaling, load balancers) to the IP-metadata changelog."""
