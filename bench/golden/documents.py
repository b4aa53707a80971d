"""The golden documents: invented organisations, products and facts, so no model can know them.

Each document is written once, in a small subset of Markdown (``#`` headings, paragraphs,
``- `` bullet lists, ``|`` pipe tables), and rendered at bench time to the format its file
name says (``bench/golden/render.py``). Every document holds distractors on purpose: other
numbers next to the asked ones, and facts that sound like those of another document (a badge
renewed every 45 days here, a coffee machine descaled every 40 days there; two vault codes; two
emergency numbers; last quarter's revenue beside this quarter's), so that retrieval, the
evidence sentence and the grounding check are tested on near misses, not only on easy hits.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GoldenDocument:
    key: str  # how questions name the document
    file_name: str  # its extension chooses the format
    title: str
    source: str  # the mini-Markdown text (see the module docstring)


HARBOR = GoldenDocument(
    key="harbor",
    file_name="zerelda-harbor-access-handbook.pdf",
    title="Port of Zerelda: Vault and Access Handbook",
    source="""
# Port of Zerelda: Vault and Access Handbook

## Purpose and scope

This handbook sets out how staff, contractors and visitors of the Zerelda Harbor Authority get into the
secured areas of the port: the customs hall, the two vaults, the scanner bays and the pilots' quarters. It
replaces revision 6 and was approved by the harbor board on 3 February 2025. Where a rule here differs from a
team's own instructions, this handbook applies.

The security office in Pier Building C issues every badge, pass and key mentioned below. It is staffed from
06:00 to 23:00 on working days and from 08:00 to 18:00 at weekends; outside those hours the gatehouse takes
over its duties.

## Access badges

Every staff member receives a photo badge on the first working day. Access badges must be renewed every 45
days at the badge desk of the security office. A badge that has not been renewed stops opening doors at
midnight on day 46, and the holder must then sign in at the gatehouse like a visitor until it is renewed.

Contractors receive a yellow badge that must be renewed every 14 days, and only while their contract is
active. Their badges open the scanner bays and the quays, never the vaults.

A lost badge costs 35 euros to replace; a damaged badge is replaced free of charge when the old one is handed
in. Report a lost badge within 4 hours, so that the security office can block it. A badge found on the quays
goes to the gatehouse, not back to its holder.

## Visitor passes

Visitor passes are printed at the gatehouse against photo identification and expire after 6 hours. A visitor
must be met at the gatehouse by the staff member who invited them and must stay with that person at all
times. Groups of more than 8 visitors need a written request to the security office two working days ahead.

Delivery drivers do not receive a visitor pass. They wait in the marked lane in front of the gatehouse and
hand their papers through the window.

## The vaults

The harbor has two vaults. The Zerelda vault, below the customs hall, holds bonded cargo documents, seized
goods and the harbor's reserve of fuel cards. Its access code is HARBOR999CB7, and the code changes only when
the Chief of Security orders it. The smaller Marlow annex vault, next to the pilots' office, holds spare keys
and sealed evidence bags; it uses the code HARBOR417KD2.

Two people must be present to open the Zerelda vault, one of them from the customs team. One person is enough
for the Marlow annex vault. Every opening is written in the vault log with the time, both names and the
reason.

The vault door closes automatically 90 seconds after it opens. Do not wedge it open: a door held open for more
than 3 minutes raises an alarm in the security office and at the police post on Quay 2.

Vault inspections take place on the first Tuesday of each month at 07:15. The inspection checks the log
against the contents and the seals on every evidence bag, and takes about 40 minutes.

## Scanner bays

The port runs four scanner bays for containers. Bays 1 to 3 take standard containers; scanner bay 4 handles
refrigerated containers and can keep their power connected during the scan. Each scanner is calibrated every
30 days by the supplier's engineer, and a bay is closed for about 2 hours while that happens.

Staff who operate the scanners hold a radiation safety certificate that must be renewed every 3 years. The
dose badge worn in the bays is read out every month.

## Keys and lockers

Every staff member may borrow a locker in the changing rooms of Pier Building C. The locker key requires a
deposit of 20 euros, paid back when the key is returned. Spare keys for offices and store rooms are kept in
the Marlow annex vault and are signed out in the key register.

## Vehicles on the quays

Only vehicles with a quay permit may drive beyond the gatehouse. The speed limit on the quays is 15 km/h, and
10 km/h in the container yard, where straddle carriers always have right of way. Vehicles park only in the
marked bays behind Pier Building C; a vehicle left on a quay is towed at the owner's cost.

Bicycles are allowed on the quays during daylight, and their riders wear a high-visibility vest like everyone
else. Electric scooters are not allowed anywhere in the port.

## Training

New staff complete the security induction in their first week. It takes half a day and ends with a short test;
a staff member who fails the test may repeat it once, after a week. Every staff member repeats the induction
every 2 years.

Staff who are allowed to open the Zerelda vault also complete the vault course, which covers the two-person
rule, the vault log and what to do when the alarm sounds. The vault course is given four times a year by the
deputy Chief of Security.

## Roles and contacts

The Chief of Security is Odalys Verhoeven. Her deputy, Rainer Castellano, handles badge disputes and signs
group visit requests. The harbor master's office is on extension 7120 and the customs desk on extension 7188.

The security emergency line is extension 7734, staffed day and night. From an outside phone, dial the
switchboard and ask for the security emergency line.

The night shift begins at 22:30 and ends at 06:30. The night shift supervisor carries the second set of vault
keys and walks the quays twice per shift.

## Incidents

Report every security incident within 2 hours on form SEC-19, even when nothing was damaged or lost.
Incidents on the water, such as an unknown boat at the fuel pier, go first to the harbor master's office and
then to the security office.
""",
)

TURBINE = GoldenDocument(
    key="turbine",
    file_name="windmere-wx7-specification.docx",
    title="Windmere WX-7 Onshore Wind Turbine: Technical Specification",
    source="""
# Windmere WX-7 Onshore Wind Turbine: Technical Specification

## Overview

The WX-7 is the third generation of onshore wind turbines from Windmere Energy Systems. It replaces the WX-5,
which remains available for sites with height limits. This specification describes the standard WX-7 with
the standard tubular steel tower; options are listed at the end.

The turbine is designed for medium wind sites (wind class IEC IIA) and for a service life of 25 years.
Windmere builds the nacelles in its plant in Harwick and ships them by road in one piece.

## Performance

The rated power of the WX-7 is 4.2 MW. The turbine starts producing power at a cut-in wind speed of 3.1 m/s
and reaches rated power at 11.5 m/s. Above a cut-out wind speed of 27 m/s the rotor is turned out of the wind
and stops; it restarts automatically when the ten-minute average falls below 23 m/s. The structure is
designed to survive gusts of 59.5 m/s while parked.

On a typical medium wind site with an average wind speed of 7.5 m/s at hub height, one WX-7 produces about
14,800 MWh per year.

## Rotor and tower

The rotor diameter of the WX-7 is 136 metres, which gives a swept area of about 14,500 square metres. The
three blades are made by Solvang Composites, and each blade is 66.5 metres long and weighs 19 tonnes. Blades
are pitched individually by electric motors.

The standard tower is a tubular steel tower in 5 segments, and the hub height of the WX-7 is 118 metres. The
tower is painted light grey (RAL 7035), and the lowest 20 metres can be painted green on request.

## Drivetrain

The drivetrain uses a three-stage gearbox and a doubly fed induction generator. The gearbox holds 780 litres
of Kestrel GL-5 synthetic gear oil, and the oil is changed every 5 years or after an oil analysis that fails.
The nacelle, with the gearbox and generator mounted, weighs 148 tonnes.

## Control system

The turbine controller adjusts the blade pitch and the generator torque many times per second, so that the
turbine runs at its best efficiency below rated wind speed and holds its rated power above it. Operators
watch every turbine of a wind farm from the Windmere Horizon portal, which shows the power, the wind and every
alarm in real time.

A turbine reports its data every 10 seconds. When the connection to the portal is lost, the controller keeps
running on its own and stores up to 90 days of data, which it sends once the connection is back.

## Foundations and installation

The standard foundation is a round concrete slab with a diameter of 24 metres, which needs about 780 cubic
metres of concrete and 95 tonnes of reinforcing steel. On soft ground the slab rests on piles.

The blades and tower segments are delivered on special trailers; the longest transport, a single blade, needs
a road with wide bends and no bridges lower than 5 metres. A crawler crane with a lifting height of at least
130 metres installs the nacelle and the rotor. With good weather a crew installs one turbine in 4 days.

## Grid connection

The generator delivers 690 volts, and a transformer in the tower base steps it up to the voltage of the wind
farm's cable network, usually 33 kV. The WX-7 can supply reactive power on request of the grid operator, also
when the wind is too weak to produce power.

## Maintenance

The WX-7 needs a routine service visit every 6 months. A visit takes a crew of 2 technicians about one
working day. Blades are inspected once a year by drone, and after every lightning strike that the blade
sensors record.

The service contract code for the WX-7 is WM-SVC-7781. Quote this code when calling the Windmere service
centre; WX-5 turbines use the contract code WM-SVC-5140.

## Noise and wildlife

The sound power level at rated power is 104.5 dB(A). In the low-noise mode, used at night near homes, the
sound power level drops to 100 dB(A) at the cost of about 6 percent of the yearly energy.

The bat protection mode stops the rotor at night from April to October when the wind speed is below 5.5 m/s,
the hours in which bats fly most.

## Comparison with the WX-5

| Figure | WX-5 | WX-7 |
| --- | --- | --- |
| Rated power | 2.8 MW | 4.2 MW |
| Rotor diameter | 101 metres | 136 metres |
| Hub height | 94 metres | 118 metres |
| Cut-in wind speed | 3.5 m/s | 3.1 m/s |
| Service interval | every 12 months | every 6 months |

The WX-5 has a hub height of 94 metres and a rated power of 2.8 MW. It needs a service visit every 12 months.

## Options

- Cold climate package: blade heating and heated gearbox oil, for sites down to minus 30 degrees Celsius.
- Ice detection on the blades, which stops the rotor when ice builds up.
- Aviation lights with radar-controlled switching, so lights are on only when an aircraft is near.
""",
)

HANDBOOK = GoldenDocument(
    key="handbook",
    file_name="brightwater-employee-handbook.md",
    title="Brightwater Analytics Employee Handbook",
    source="""
# Brightwater Analytics Employee Handbook

This handbook explains the day-to-day rules for everyone employed by Brightwater Analytics. It covers
holidays, sick leave, travel and expenses, remote work, equipment and the shared kitchen. Questions about
anything here go to the people team at people@brightwater.example.

## Holidays

Full-time employees get 27 days of paid holiday per calendar year; part-time employees get the same number
in proportion to their hours. Public holidays come on top of these days.

Unused days carry over to the next year, but unused days expire on 31 March of the following year. Days that
expire are not paid out.

Request holidays at least 10 working days ahead in the HR portal, Tally. Requests for more than 3 weeks in a
row need the approval of the department head as well as the team lead.

## Sick leave

Call your team lead before 09:30 on the first day you are ill; a message in the chat is not enough. From the
fourth day of illness a doctor's note is needed. Sick days do not count against your holidays, also when you
fall ill during a holiday.

## Travel and expenses

Book travel through the travel desk whenever possible.

- Train tickets above 120 euros need approval from the team lead before booking.
- Flights always need approval from the finance director, Henrike Osei.
- The meal allowance on travel days is 18.50 euros per day; receipts are not needed for it.
- Hotels may cost up to 140 euros per night, or 190 euros per night in capital cities.
- Business trips by private car are paid at 0.23 euros per kilometre.

Submit expenses within 30 days of the trip in Tally, with a photo of each receipt. Expenses submitted later
are paid only with the approval of the finance director.

## Remote work

Employees may work remotely up to 3 days per week. Core hours, in which everyone is reachable, are from 10:00
to 15:00. Teams agree among themselves on one shared office day per week.

Working from abroad is allowed for up to 20 working days per year, within the European Union only.

## Equipment

Every employee receives a laptop, a headset and a monitor. Laptops are replaced every 4 years, or earlier
when a repair would cost more than half the price of a new one. The phone allowance is 25 euros per month,
paid with the salary.

Lost or stolen equipment must be reported to the IT desk within 24 hours.

## The kitchen

The office kitchen has a Brewmatic Q9 coffee machine, a kettle and two fridges. The Brewmatic Q9 coffee
machine is descaled every 40 days by the facilities team; its water filter is changed every 3 months. The
facilities contact for the kitchen is Joost Ambrose.

The fridges are cleared every Friday at 16:00: label your food with your name and the date, or it will be
thrown away.

## Working hours and overtime

A full-time working week is 38 hours. Overtime is worked only when the team lead asks for it, and is given
back as time off within 3 months; it is not paid out. Work on a Sunday or a public holiday counts double.

## Training budget

Every employee has a training budget of 1,200 euros per year for courses, conferences and books. The budget
does not carry over to the next year. Courses longer than 5 days need the approval of the department head.

## Code of conduct

Treat colleagues, customers and suppliers with respect. Gifts from customers or suppliers worth more than 50
euros must be reported to the people team. Confidential customer data stays on company laptops and in the
company's cloud storage; it is never sent to a private e-mail address.

## Leaving the company

The notice period is one month for employees and two months for the company. Return your laptop, badge and
other equipment to the IT desk on your last working day. Remaining holiday days are paid out with the last
salary.

## Bicycle lease

Employees may lease a bicycle through the company for up to 36 months. The lease is paid from the gross
salary, and the bicycle may be bought for 15 percent of its price when the lease ends.
""",
)

CLINIC = GoldenDocument(
    key="clinic",
    file_name="lindqvist-clinic-faq.html",
    title="Lindqvist Veterinary Clinic: Frequently Asked Questions",
    source="""
# Lindqvist Veterinary Clinic: Frequently Asked Questions

The Lindqvist Veterinary Clinic cares for dogs, cats, rabbits and other small pets. The clinic was founded in
1998 by Dr. Per Lindqvist and has grown to a team of 6 vets and 9 veterinary nurses. This page answers the
questions our clients ask most often.

## When is the clinic open?

The clinic is open on weekdays from 08:00 to 19:00. On Saturdays the clinic is open from 09:00 to 13:00. It
is closed on Sundays and public holidays, when only the emergency service is available.

Consultations are by appointment; walk-in hours are on weekdays from 08:00 to 09:30.

## What do I do in an emergency?

Call the emergency number 0800-5521, which is answered 24 hours a day, every day of the year. A vet on duty
will tell you whether to come in at once. For visits outside opening hours an out-of-hours surcharge of 85
euros applies, on top of the treatment.

## How much do vaccinations cost?

- The rabies vaccine costs 64 euros.
- The combined dog vaccine (DHPPi) costs 52 euros.
- The cat flu vaccine costs 47 euros.
- The rabbit vaccine against myxomatosis costs 44 euros.

Boosters are given every year, except the rabies vaccine, which is repeated every 3 years. Prices include the
health check that comes with every vaccination.

## Who performs surgery?

Dr. Ingrid Maalouf leads the surgical team. Routine operations such as neutering take place on Tuesday and
Thursday mornings; you bring your pet between 08:00 and 08:30 and collect it the same afternoon.

## How should my pet prepare for surgery?

Your pet must fast for 12 hours before surgery: no food after 20:00 the evening before. Water is allowed until
you leave home in the morning. Rabbits and guinea pigs must not fast; bring some of their usual food.

## What does dental care cost?

A dental cleaning costs 190 euros, including the anaesthesia and a check of every tooth. Extractions are
charged at 25 euros per tooth on top. We recommend a dental check every year for dogs and cats over 7 years.

## Can my pet stay at the clinic while I am away?

Yes. A kennel stay costs 29 euros per night, and a stay in the cattery costs 21 euros per night, with food
included. Pets must be fully vaccinated. Book boarding at least 2 weeks ahead in the summer holidays.

## Do you microchip pets?

A microchip with its registration in the national pet register costs 38 euros. The registration number of
every chip placed at the clinic starts with the letters LVC, so that a found pet can be traced to us.

## How do I make or cancel an appointment?

Book an appointment by phone or through the online booking page. A standard consultation takes 15 minutes;
ask for a double appointment when you bring more than one pet. Cancel at least 24 hours ahead; a missed
appointment without a cancellation is charged at 30 euros.

## Can I get repeat prescriptions?

Repeat prescriptions for pets on long-term medicine can be ordered online and collected after 2 working days.
A vet must have seen your pet in the last 6 months before a repeat prescription is given. Medicines can also
be sent by post for a fee of 6 euros.

## Do you offer packages for puppies and kittens?

The puppy package costs 139 euros and includes the first vaccinations, a microchip, a worming treatment and
two health checks. The kitten package costs 119 euros and includes the same for kittens. Both packages must
be started before the pet is 12 weeks old.

## Do you care for older pets?

Yes. Older pets are invited to a senior check every 6 months, with a blood test once a year. When the end of
a pet's life comes, the vet discusses the options with you calmly, at the clinic or at your home.

## How do I pay?

Pay at the desk by card after each visit. For treatments above 400 euros we can send an invoice, which must be
paid within 14 days. Pet insurance claims are sent by the owner, with the invoice we provide.
""",
)

BAKERY = GoldenDocument(
    key="bakery",
    file_name="kettleby-bakery-production-notes.txt",
    title="Kettleby Bakery: Production Notes, Spring Season",
    source="""
# Kettleby Bakery: Production Notes, Spring Season

These notes are for the production team of Kettleby Bakery. They describe the starter, the main breads, our
suppliers and the rules for batches and allergens. The head baker, Annika Sorlie, updates them at the start
of each season.

## Shifts

The baking shift starts at 03:45 and ends at 11:45. The shop opens at 07:00, so the first bread must be out
of the oven by 06:40. The packing shift for the wholesale customers starts at 05:30.

## The starter

Our sourdough starter is called Old Maud and is more than 30 years old. Old Maud is fed every 12 hours with
flour and water in the ratio 1:5:5 (one part starter, five parts flour, five parts water). It is kept at 24
degrees Celsius in the proofing cabinet. A spare portion is kept in the cold room at 4 degrees Celsius and
refreshed every Sunday.

## Country loaf

The country loaf is our best-selling bread. The dough rests for a bulk fermentation of 4 hours, is shaped, and
then proofs in the cold room for 14 hours at 4 degrees Celsius. The country loaf is baked at 248 degrees
Celsius for 42 minutes, with steam for the first 15 minutes. We bake 180 country loaves on a normal weekday
and 260 on Saturdays.

## Nordhavn rye

The Nordhavn rye is a dark rye bread with sunflower seeds. The Nordhavn rye bakes for 55 minutes at 230
degrees Celsius in the tins. It must rest for 24 hours before it is sliced, so rye baked today is sold
tomorrow.

## Sweet goods

Cinnamon buns, cardamom knots and apple turnovers are made by the pastry team. The dough for the buns contains
butter and eggs; the filling of the knots contains almonds.

The cinnamon buns from batch KB-2291 were withdrawn on 9 May because of undeclared hazelnut in the topping.
Every customer who bought them was offered a refund, and the topping supplier has been replaced.

## Suppliers

All flour comes from Mellby Mill, which delivers on Mondays and Thursdays. The minimum order is 600 kilograms.
Butter and cream come from the Halden dairy cooperative, which delivers every day except Sunday. Seeds and
dried fruit come from a wholesaler and are ordered every two weeks.

## Batches and allergens

Every tray and every crate carries a batch code in the format KB-, then the day of the year and the number of
the production line. Write the code on the batch sheet before the goods leave the bakery.

The allergen officer at Kettleby Bakery is Tomasz Wierzbicki. Every new recipe and every change of supplier
must be checked by him before production. The allergen list in the shop is updated every Monday.

## Wholesale customers

We deliver bread to 14 cafes and 3 hotels in and around Kettleby. Wholesale orders for the next day must be in
by 14:00; orders that come later are baked only if the dough plan allows it. The delivery van leaves at 06:15
and is back by 09:30.

## Seasonal products

In spring we bake hot cross buns from four weeks before Easter until Easter Monday, and the lemon and poppy
seed loaf from May. The midsummer strawberry tart is made only to order and needs 2 days notice.

## Hygiene

Wash your hands when you enter the bakery and after every break. Hair is covered at all times, and no rings or
watches are worn in production. The bakery is inspected by the food safety authority once a year; the last
inspection, in February, found no problems.

## Waste

Bread that is not sold by closing time goes to the food bank in Kettleby, which collects it at 18:30. Stale
bread that the food bank cannot use is made into crumbs or goes to a local pig farm.

## Equipment

The spiral mixer takes up to 80 kilograms of dough. The deck oven is cleaned every Sunday, and its stones are
replaced every 2 years. The cold room is kept between 2 and 5 degrees Celsius, and its temperature is logged
every 4 hours.
""",
)

RAIL = GoldenDocument(
    key="rail",
    file_name="aldermoor-rail-status-report.pdf",
    title="Aldermoor Rail Extension: Project Status Report",
    source="""
# Aldermoor Rail Extension: Project Status Report

## Summary

The Aldermoor Rail Extension is a new light rail line from Aldermoor Central to Pellham Quay. The project code
of the Aldermoor Rail Extension is ALD-RX-5530; use it on every invoice and every letter. The line will be
11.4 km long and have 6 new stations.

The revised budget of the project is 48.6 million euros. The original budget of 44.9 million euros was raised
in March after the ground water works at Millrace and the delay at Tanner's Row. The Aldermoor Rail Extension
is planned to open on 14 September 2027.

The main contractor is Brannock & Tull, which builds the tunnel, the track and the stations. The project
director is Sunniva Halvorsen, who reports to the city council's transport committee every quarter.

## Tunnelling

The tunnel boring machine Greta started digging on 2 March 2026 at the Millrace shaft. The tunnel is 2.3 km
long and runs below the old town from Millrace to Copperfield. Greta advances about 11 metres per day on
average and has completed 1.4 km so far.

The second tunnel boring machine, Hilde, is kept in reserve at the depot and will be used only if Greta is
out of service for more than 4 weeks.

## Stations

The six stations are Aldermoor Central, Millrace, Copperfield, Tanner's Row, Eastbrook and Pellham Quay.
Copperfield will be the only underground station and has the longest platform, 160 metres. All stations will
have step-free access, and Aldermoor Central connects to the regional trains.

Work at Tanner's Row was delayed by 5 weeks after the remains of a medieval tannery floor were found during
excavation; the floor was recorded by the city archaeologist and then removed.

## Trains and service

Eight trains have been ordered from Halden Rolling Stock. Each train has 3 cars and carries up to 420
passengers. At peak times trains will run every 7 minutes, and every 12 minutes in the evening and on
Sundays. A journey from Aldermoor Central to Pellham Quay will take 19 minutes.

## Budget

| Item | Budget (million euros) |
| --- | --- |
| Tunnel and track | 21.7 |
| Stations | 13.2 |
| Trains | 9.8 |
| Ground water works | 2.1 |
| Contingency | 1.8 |
| Total | 48.6 |

## Milestones

| Milestone | Date |
| --- | --- |
| Tunnel boring starts | 2 March 2026 |
| Tunnel breakthrough at Copperfield | 15 January 2027 |
| Track complete | 30 April 2027 |
| Test running starts | 5 July 2027 |
| Opening | 14 September 2027 |

## Consultation and complaints

Residents along the route are informed by a newsletter every month and at an open evening every quarter.
Works that make noise at night need a permit from the city and are announced at least 7 days ahead. The
project received 212 complaints in the last quarter, most of them about noise at the Millrace shaft, and
answered 95 percent of them within 10 working days.

## Environment

Every tree felled for the works is replaced by two new trees along the route; 340 trees will be planted
before the opening. The soil dug out of the tunnel is taken by barge to a former quarry, which saves about
9,000 lorry journeys.

## Risks

The main risks for the rest of the project are ground water at Millrace, the supply of rails, which are
delivered in batches of 2 km, and the testing of the signalling system, which needs 10 weeks without passengers
before the opening.
""",
)

SALES = GoldenDocument(
    key="sales",
    file_name="fennick-audio-q3-sales-review.docx",
    title="Fennick Audio: Q3 Sales Review",
    source="""
# Fennick Audio: Q3 Sales Review

## Highlights

Fennick Audio's revenue in Q3 was 3.72 million euros, up 12 percent from 3.32 million euros in Q2. Online
sales grew faster than sales through shops and now make up 58 percent of revenue.

The best-selling product in Q3 was the Fennick Loop S2 wireless headphones, with 18,400 units sold. The Fennick
Loop S2 costs 149 euros. The older Loop S1, which cost 119 euros, was discontinued in August and sold its
remaining stock at a discount.

## Products

| Product | Price | Units sold in Q3 |
| --- | --- | --- |
| Fennick Loop S2 | 149 euros | 18,400 |
| Fennick Loop S1 | 119 euros | 6,150 |
| Fennick Pebble speaker | 79 euros | 9,700 |
| Fennick Dock charger | 39 euros | 4,300 |

## Returns

The return rate in Q3 was 4.1 percent, down from 5.6 percent in Q2. The main reason for returns was the hinge
of the Loop S2 charging case; a stronger hinge is used in all cases made since September.

## Operations

Fennick Audio opened its new warehouse in Tilburg on 2 September. The warehouse covers 6,500 square metres and
ships orders for the whole of the Benelux and Germany. The old warehouse in Venlo will close at the end of the
year.

The average response time of customer support was 7 hours in Q3, against a target of 4 hours. Two support
agents will join in October.

## Sales by channel and region

Online sales through the Fennick web shop were 2.16 million euros in Q3. Sales through shops and department
stores were 1.56 million euros. The Netherlands remained the largest market with 47 percent of revenue,
followed by Germany with 31 percent and Belgium with 14 percent.

## Marketing

Marketing spending in Q3 was 265,000 euros. The campaign with cycling influencers for the Loop S2 brought the
most new customers, at a cost of 11 euros per new customer. The newsletter now reaches 84,000 subscribers.

## Costs and margin

The gross margin in Q3 was 41 percent, up from 38 percent in Q2, mainly because the Loop S2 is cheaper to make
than the Loop S1. Transport costs rose by 9 percent because of the move to the new warehouse.

## People

The CEO of Fennick Audio is Marisol Achterberg. The head of sales, Dario Pellegrini, leads the shop and online
teams. The product team moved to the new office in Eindhoven in July.

## Outlook for Q4

Fennick Audio's revenue target for Q4 is 4.5 million euros, helped by the holiday season. The Fennick Arc
soundbar will launch on 21 November at a price of 229 euros. Marketing spending in Q4 will be 410,000 euros,
mostly for the launch of the Arc.
""",
)

DOCUMENTS: tuple[GoldenDocument, ...] = (HARBOR, TURBINE, HANDBOOK, CLINIC, BAKERY, RAIL, SALES)
BY_KEY = {document.key: document for document in DOCUMENTS}
